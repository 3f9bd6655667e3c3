"""The commands, one module each (argparse and a call into library code); libraries never import them.

    job                                  console script           module                    also as (python -m)
    train a classifier (video or image)  swin-train               cli.train                 video_swin.train, core.train,
                                                                                             swin_mlp.train
    multi-view test of a video run       swin-test                cli.test                  video_swin.test
    classify videos / images             swin-predict(-image)     cli.predict(_image)       video_swin.predict, core.predict
    features of videos / images          swin-extract(-image)     cli.extract(_image)       video_swin.extract_features,
                                                                                             core.extract_features
    class-activation maps                swin-explain(-image)     cli.explain(_image)       video_swin.explain, core.explain
    ONNX / torch.export / timm / HF      swin-export              cli.export                core.export
    re-encode videos for training        swin-prepare             cli.prepare               video_swin.prepare
    SimMIM or MoBY pretraining           swin-pretrain            cli.pretrain              simmim.pretrain, moby.pretrain
    fine-tune a pretrained backbone      swin-finetune            cli.finetune              simmim.finetune, moby.finetune
    linear probe                         swin-linear              cli.linear                moby.linear
    SimMIM reconstructions               swin-visualize           cli.visualize             simmim.visualize
    torchrun: preemption, exit codes     swin-torchrun            cli.torchrun              core.engine.torchrun_wrapper
    FLOPs, mask pictures, curves         -                        cli.summary, cli.visualize_mask, cli.plot
"""
